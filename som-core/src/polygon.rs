//! COCO polygons.
