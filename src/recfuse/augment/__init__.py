"""Data-centric refinement of interaction data (LLM-I2I): a generator of synthetic interactions
for long-tail items, a discriminator that drops noisy edges, their random and loss-based
controls, all behind a governance gate and a ledger."""
