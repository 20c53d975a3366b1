"""ReminderQueue: send jobs go out with SendMessageBatch."""

from __future__ import annotations

from dunning.dal.aws import sqs
from dunning.models.jobs import SendJob


class JobQueue:
    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, jobs: list[SendJob]) -> list[SendJob]:
        """Enqueue in batches of 10; returns the jobs SQS did not accept."""
        failed: list[SendJob] = []
        for start in range(0, len(jobs), 10):
            batch = jobs[start : start + 10]
            response = sqs().send_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "MessageBody": job.model_dump_json()} for i, job in enumerate(batch)],
            )
            failed.extend(batch[int(entry["Id"])] for entry in response.get("Failed", []))
        return failed
