"""Radicale 3.9 plugins that serve the CRM diary: ``storage``, ``auth`` and ``rights``.

Configure Radicale with ``type = storage_plugin`` in each of the three sections. The plugins
are thin: every decision is a call into a :mod:`gateway` service.
"""

from storage_plugin.auth import Auth
from storage_plugin.rights import Rights
from storage_plugin.storage import Storage

__all__ = ["Auth", "Rights", "Storage"]
