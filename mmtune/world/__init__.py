"""mmtune.world"""
