"""Instance mask geometry without Beam.

png    binary masks <-> 1-bit PNGs (the records' ``image/object/mask``)
paste  the convention that puts a detection's M x M mask grid into the image:
       ``axis_samples`` and ``paste_masks``, the full-canvas reference
rle    masks -> COCO compressed RLE without a canvas (``encode_masks_rle``,
       ``encode_masks_with_scores``)
runs   the run construction behind ``rle``: all detections of an image at once
"""
