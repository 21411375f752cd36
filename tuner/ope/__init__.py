"""Offline policy evaluation on logged router events: the logged-bandit view of a journal (`log`), candidate
policies (`policy`), estimators (`estimators`: IPS, SNIPS, DM, DR and variants), reward models, bootstrap
intervals, replay, and the one-call evaluation the CLI and the simulation use (`run`)."""
