"""Guidance, scheduler and the clip loop."""
