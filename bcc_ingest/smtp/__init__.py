"""The BCC listener: the ``smtp`` role of ``serve``.

`listener` runs aiosmtpd; `handler` maps its hooks to the blocking `decisions` (whose mail it
is, and committing it to the inbound queue before the 250) and to `replies`; `sender_auth`
proves a sender (DKIM, trusted networks); `queue_worker` turns queued mail into activities.
"""
