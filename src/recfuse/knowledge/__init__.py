"""Knowledge about items and users distilled from frozen LLMs (ReaSeq; keyword summaries)."""
