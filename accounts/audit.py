"""The moderation audit log: one append-only record per action the contract lists.

Services call ``audit_record`` inside the transaction of the action itself,
so a record exists exactly when the action was stored.
"""

from __future__ import annotations

from accounts.models import AuditRecord, User

Action = AuditRecord.Action


def audit_record(*, actor: User | None, action: str, target: str, detail: str = "") -> AuditRecord:
    """Append one record; ``actor`` None is the system (a management command, a migration)."""
    return AuditRecord.objects.create(
        actor_id=actor.id if actor is not None else None,
        actor=actor.username if actor is not None else "",
        action=action,
        target=target[:200],
        detail=detail,
    )
