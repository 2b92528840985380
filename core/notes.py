"""Notes on a job: what it could not measure and went on without (schemas.tables.NoteKind).

A failed trial encode, VMAF run or loudness measurement never fails a video: the job goes on with the fixed
ladder, no score, or the source's level, and says so here for operators and the job page.
"""

import logging
import uuid

from sqlmodel import Session

from schemas.tables import JobNote, NoteKind

log = logging.getLogger(__name__)

MAX_MESSAGE = 2000  # a note is a sentence and an excerpt, not a log


def add_note(engine, job_id: uuid.UUID, kind: NoteKind, message: str) -> None:
    """Append a note in its own transaction (appended, never edited: parts running at once cannot lose one)."""
    log.warning("job %s: %s: %s", job_id, kind.value, message)
    with Session(engine) as s:
        s.add(JobNote(job_id=job_id, kind=kind.value, message=message[:MAX_MESSAGE]))
        s.commit()
