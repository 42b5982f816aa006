"""Data: the generated demo dataset (`distil.data.demo`) and readers of any YOLO dataset (`distil.data.yolo`)."""

from distil.data.demo import (
    CLASS_NAMES,
    FAULTS,
    DemoSettings,
    generate_image,
    image_faults,
    images_by_fault,
    make_demo_dataset,
)
from distil.data.yolo import load_images, readable_images, split_images

__all__ = ["CLASS_NAMES", "FAULTS", "DemoSettings", "generate_image", "image_faults", "images_by_fault",
           "load_images", "make_demo_dataset", "readable_images", "split_images"]
