"""tests package"""
