codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
