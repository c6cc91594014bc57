"""curriculum"""
