"""The scripted agent's rules, as a prompt author writes them."""

from __future__ import annotations

from novitrac_sandbox.elevenlabs.script import AgentScript, Reply, ToolCall

PROMPT = """You are a helpful receptionist for {{shop}}.
when "price" say "It costs ten euros at {{shop}}"
when "book" call book_slot {"day": "monday"} say "Booked"
when "bye" say "Goodbye" end_call
when "agent" end_call
"""


def test_the_first_matching_keyword_answers_whatever_the_case() -> None:
    script = AgentScript(PROMPT)
    assert script.respond("What's the PRICE?", {"shop": "Ada's"}) == Reply(
        "It costs ten euros at Ada's"
    )


def test_a_rule_can_call_a_tool_and_another_can_hang_up() -> None:
    script = AgentScript(PROMPT)
    assert script.respond("can I book", {}) == Reply(
        "Booked", ToolCall("book_slot", {"day": "monday"})
    )
    assert script.respond("ok bye", {}) == Reply("Goodbye", end_call=True)
    assert script.respond("a real agent please", {}) == Reply("", end_call=True)


def test_without_a_matching_rule_the_agent_echoes_or_says_its_fallback() -> None:
    assert AgentScript(PROMPT).respond("hello", {}) == Reply("You said: hello")
    fallback = AgentScript(PROMPT + 'otherwise say "Sorry?"')
    assert fallback.respond("hello", {}) == Reply("Sorry?")
