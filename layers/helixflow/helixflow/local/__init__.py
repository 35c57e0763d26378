"""helixflow.local"""
