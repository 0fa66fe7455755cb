"""mmtune.data"""
