"""Agentic XAI: SHAP explanations refined by a governed LLM agent, scored, early-stopped."""
