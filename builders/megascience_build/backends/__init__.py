"""Model backends: one small interface (requests in; text, finish reason and token counts out)."""
from .base import GenerationRequest, GenerationResult, ModelBackend, SamplingParams  # noqa: F401
