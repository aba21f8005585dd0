// Sign up, verify the emailed code, log in, forgot and reset password, accept an invitation.

import { h } from '../dom.js';
import { field, form, toast, busy, errorBox } from '../ui.js';

/** @typedef {import('../app.js').Context} Context @typedef {import('../app.js').View} View */

/**
 * @param {string} title
 * @param {string} intro
 * @param {...import('../dom.js').Child} children
 */
function card(title, intro, ...children) {
  return h('section', { class: 'auth-card' },
    h('p', { class: 'brand brand-large' }, 'Novitrac'),
    h('h1', { tabindex: '-1' }, title),
    intro ? h('p', { class: 'muted' }, intro) : null,
    children);
}

const CODE = { inputmode: 'numeric', pattern: '[0-9]{6}', maxlength: 6, autocomplete: 'one-time-code' };

/** @param {Context} ctx @param {View} view */
export function login(ctx, view) {
  const next = view.url.searchParams.get('next') ?? undefined;
  return card('Log in', '',
    form({
      label: 'Log in',
      fields: [
        field({ label: 'Email', name: 'email', type: 'email', required: true, autocomplete: 'username', value: view.url.searchParams.get('email') ?? '' }),
        field({ label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'current-password' }),
      ],
      submit: 'Log in',
      onSubmit: async (values) => {
        const pair = await ctx.api.post('/v1/auth/login', { email: values.email.trim(), password: values.password }, { auth: false });
        await ctx.signIn(pair, next);
      },
    }),
    h('p', null, h('a', { href: '/forgot-password' }, 'Forgot your password?')),
    h('p', null, 'New to Novitrac? ', h('a', { href: '/signup' }, 'Create an account')),
    h('p', null, 'Signed up but not verified? ', h('a', { href: '/verify' }, 'Enter your code')));
}

/** @param {Context} ctx */
export function signup(ctx) {
  return card('Create your account', 'We will email you a six-digit code to confirm your address.',
    form({
      label: 'Sign up',
      fields: [
        field({ label: 'Your name', name: 'name', required: true, autocomplete: 'name', maxlength: 200 }),
        field({ label: 'Organisation name', name: 'organization_name', required: true, autocomplete: 'organization', maxlength: 200 }),
        field({ label: 'Email', name: 'email', type: 'email', required: true, autocomplete: 'email' }),
        field({ label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: 8, help: 'At least 8 characters.' }),
      ],
      submit: 'Sign up',
      onSubmit: async (values) => {
        const email = values.email.trim();
        await ctx.api.post('/v1/auth/signup', { ...values, email }, { auth: false });
        ctx.navigate(`/verify?email=${encodeURIComponent(email)}`);
      },
    }),
    h('p', null, 'Already have an account? ', h('a', { href: '/login' }, 'Log in')));
}

/** @param {Context} ctx @param {View} view */
export function verify(ctx, view) {
  const email = view.url.searchParams.get('email') ?? '';
  const resendBox = errorBox();
  const resend = h('button', { type: 'button', class: 'link-button' }, 'Send a new code');
  const element = card('Verify your email', email ? `Enter the code we sent to ${email}.` : 'Enter the code we emailed you.',
    form({
      label: 'Verify',
      fields: [
        field({ label: 'Email', name: 'email', type: 'email', required: true, value: email, autocomplete: 'email' }),
        field({ label: 'Code', name: 'code', required: true, ...CODE }),
      ],
      submit: 'Verify',
      onSubmit: async (values) => {
        const pair = await ctx.api.post('/v1/auth/verify', { email: values.email.trim(), code: values.code.trim() }, { auth: false });
        await ctx.signIn(pair, '/agents');
        toast('Welcome to Novitrac! Start by creating an agent.');
      },
    }),
    resendBox,
    h('p', null, 'No code? ', resend));
  resend.addEventListener('click', () => {
    const input = /** @type {HTMLInputElement | null} */ (element.querySelector('input[name=email]'));
    const value = input?.value.trim() ?? '';
    if (!value) {
      input?.focus();
      return;
    }
    void busy(resend, resendBox, async () => {
      await ctx.api.post('/v1/auth/verify/resend', { email: value }, { auth: false });
      toast('If that address is waiting for verification, a new code is on its way.');
    });
  });
  return element;
}

/** @param {Context} ctx @param {View} view */
export function forgot(ctx, view) {
  return card('Forgot your password?', 'We will email you a code to choose a new one.',
    form({
      label: 'Forgot password',
      fields: [field({ label: 'Email', name: 'email', type: 'email', required: true, autocomplete: 'email', value: view.url.searchParams.get('email') ?? '' })],
      submit: 'Send the code',
      onSubmit: async (values) => {
        const email = values.email.trim();
        await ctx.api.post('/v1/auth/password/forgot', { email }, { auth: false });
        ctx.navigate(`/reset-password?email=${encodeURIComponent(email)}`);
      },
    }),
    h('p', null, h('a', { href: '/login' }, 'Back to log in')));
}

/** @param {Context} ctx @param {View} view */
export function reset(ctx, view) {
  return card('Choose a new password', 'Enter the code from the email and your new password.',
    form({
      label: 'Reset password',
      fields: [
        field({ label: 'Email', name: 'email', type: 'email', required: true, autocomplete: 'username', value: view.url.searchParams.get('email') ?? '' }),
        field({ label: 'Code', name: 'code', required: true, ...CODE }),
        field({ label: 'New password', name: 'new_password', type: 'password', required: true, autocomplete: 'new-password', minlength: 8, help: 'At least 8 characters.' }),
      ],
      submit: 'Set the password',
      onSubmit: async (values) => {
        const email = values.email.trim();
        await ctx.api.post('/v1/auth/password/reset', { email, code: values.code.trim(), new_password: values.new_password }, { auth: false });
        toast('Your password has been changed. Log in with it.');
        ctx.navigate(`/login?email=${encodeURIComponent(email)}`);
      },
    }));
}

/** @param {Context} ctx @param {View} view */
export function acceptInvitation(ctx, view) {
  const signedIn = ctx.api.signedIn;
  return card('Join an organisation', signedIn
    ? 'Accept the invitation with the account you are logged in with.'
    : 'New to Novitrac? Choose your name and a password. Already have an account? Enter its password.',
  form({
    label: 'Accept invitation',
    fields: [
      field({ label: 'Invitation code', name: 'code', required: true, value: view.url.searchParams.get('code') ?? '' }),
      signedIn ? null : field({ label: 'Your name (new accounts)', name: 'name', autocomplete: 'name' }),
      signedIn ? null : field({ label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'current-password' }),
    ],
    submit: 'Join',
    onSubmit: async (values) => {
      /** @type {Record<string, string>} */
      const body = { code: values.code.trim() };
      if (values.name?.trim()) body.name = values.name.trim();
      if (values.password) body.password = values.password;
      const pair = await ctx.api.post('/v1/auth/invitations/accept', body, { auth: signedIn });
      await ctx.signIn(pair, '/calls');
      toast('You have joined the organisation.');
    },
  }));
}
