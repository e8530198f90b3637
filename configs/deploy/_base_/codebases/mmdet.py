codebase_config = dict(type='mmdet', task='ObjectDetection')
