"""helixflow.fastq"""
