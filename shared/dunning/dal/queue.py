"""ReminderQueue: send jobs go out with SendMessageBatch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from dunning.dal.aws import sqs
from dunning.models.jobs import SendJob

BATCH_BYTES = 262_144  # SendMessageBatch: the bodies of one call together (and one message) at most 256 KiB


class JobQueue:
    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, jobs: Iterable[SendJob]) -> list[SendJob]:
        """Enqueue in batches of 10 (fewer past BATCH_BYTES); returns the jobs SQS did not accept.

        Jobs are taken as they come and each batch goes once full: a caller that builds its jobs lazily never
        holds them all at once (the same batches and calls as for a list)."""
        failed: list[SendJob] = []
        for batch in _batched((job, job.model_dump_json()) for job in jobs):
            response = sqs().send_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(batch)],
            )
            failed.extend(batch[int(entry["Id"])][0] for entry in response.get("Failed", []))
        return failed


def _batches(bodies: Iterable[tuple[SendJob, str]]) -> list[list[tuple[SendJob, str]]]:
    """Consecutive groups of at most 10 whose bodies add up to at most BATCH_BYTES (a job's lines carry its loans)."""
    return list(_batched(bodies))


def _batched(bodies: Iterable[tuple[SendJob, str]]) -> Iterator[list[tuple[SendJob, str]]]:
    """`_batches`, each group given as soon as it is complete (the next body would not fit), the last at the end."""
    batch: list[tuple[SendJob, str]] = []
    size = 0
    for entry in bodies:
        length = len(entry[1].encode())
        if batch and (len(batch) == 10 or size + length > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += length
    if batch:
        yield batch
