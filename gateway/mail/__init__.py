"""The MIME parser: raw RFC 5322 bytes to one plain `ParsedEmail` (see `gateway.mail.parse`).

Pure: no database, no network, no clock. Both mail edges use it, and the activity service
consumes its values.
"""
