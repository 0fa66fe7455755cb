"""mmtune.bench"""
