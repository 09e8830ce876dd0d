"""Truto unified CRM emulator (see ``app``)."""

from sync.emulators.truto.app import TOKEN, TrutoEmulator

__all__ = ["TOKEN", "TrutoEmulator"]
