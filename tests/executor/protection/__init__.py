"""Tests of the exchange-side protective stops the executor keeps for every open leg (sim and live fake)."""
