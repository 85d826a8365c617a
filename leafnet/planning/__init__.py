"""Planning: fingerprint, plans and splits of a verified raw dataset, then preprocessing."""

from leafnet.planning.plan_and_preprocess import PlanningResult, plan_and_preprocess

__all__ = ["PlanningResult", "plan_and_preprocess"]
