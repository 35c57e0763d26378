"""helixflow.phase2"""
