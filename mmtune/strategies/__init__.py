"""mmtune.strategies"""
