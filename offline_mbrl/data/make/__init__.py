"""Making the suite's own datasets: behaviour policies, dataset tiers, MDP families."""
