"""Tests of the tuner's learners: protocol, arms, convergence, state, docstrings, the structured learner."""
