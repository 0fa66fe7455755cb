"""Preference alignment (``mmtune align``): DPO and its loss types, KTO and mDPO on TRL's trainers, GRPO
on TRL's ``GRPOTrainer``; every tuning strategy applies, the output is a tuned checkpoint like SFT's."""
