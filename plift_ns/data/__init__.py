"""Panoptic data contract: class sets, dataparser, dataset, datamanager."""
