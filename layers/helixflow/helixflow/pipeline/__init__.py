"""helixflow.pipeline"""
