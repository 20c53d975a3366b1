"""In-memory SMS gateway and pacer for the sender's unit tier: what `dal.sms.SmsGateway` and `dal.sms.Pacer` do
for the sender, without SNS or a clock.

`FakeSms.publish` answers from a script (a message id, or the exception SNS's answer becomes: PublishRejected
retryable for throttling, PublishUncertain for a lost answer), then message ids; it keeps every SMS it sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeSms:
    script: list[Exception] = field(default_factory=list)  # what the next calls answer, before succeeding
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (phone, body, message_id)
    calls: int = 0

    def publish(self, phone: str, body: str) -> str:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        message_id = f"msg-{len(self.sent) + 1}"
        self.sent.append((phone, body, message_id))
        return message_id


@dataclass
class FakePacer:
    parts_per_second: float = 20.0
    waited: list[int] = field(default_factory=list)  # parts asked for, one entry a wait

    def wait(self, parts: int) -> None:
        self.waited.append(parts)
