"""Learning agents: the decision problem as an MDP, the actors, and DDPG over both actors.

Importing this package needs only numpy; the torch-based modules (:mod:`models.agents.actors`,
:mod:`models.agents.ddpg`) need the ``rl`` extra (torch, gymnasium, stable-baselines3).
"""
