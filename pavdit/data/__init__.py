"""Datasets, transforms and samplers."""
from pavdit.data.teacher_dataset import TeacherRegressionDataset

__all__ = ['TeacherRegressionDataset']
