"""mmtune.recipes"""
