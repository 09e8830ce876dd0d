"""Close CRM emulator (see ``app``)."""

from sync.emulators.close.app import API_KEY, MAX_SKIP, CloseEmulator

__all__ = ["API_KEY", "MAX_SKIP", "CloseEmulator"]
