"""ReminderQueue: send jobs go out with SendMessageBatch."""

from __future__ import annotations

from dunning.dal.aws import sqs
from dunning.models.jobs import SendJob

BATCH_BYTES = 262_144  # SendMessageBatch: the bodies of one call together (and one message) at most 256 KiB


class JobQueue:
    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, jobs: list[SendJob]) -> list[SendJob]:
        """Enqueue in batches of 10 (fewer past BATCH_BYTES); returns the jobs SQS did not accept."""
        failed: list[SendJob] = []
        for batch in _batches([(job, job.model_dump_json()) for job in jobs]):
            response = sqs().send_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(batch)],
            )
            failed.extend(batch[int(entry["Id"])][0] for entry in response.get("Failed", []))
        return failed


def _batches(bodies: list[tuple[SendJob, str]]) -> list[list[tuple[SendJob, str]]]:
    """Consecutive groups of at most 10 whose bodies add up to at most BATCH_BYTES (a job's lines carry its loans)."""
    batches: list[list[tuple[SendJob, str]]] = []
    size = 0
    for entry in bodies:
        length = len(entry[1].encode())
        if not batches or len(batches[-1]) == 10 or size + length > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(entry)
        size += length
    return batches
