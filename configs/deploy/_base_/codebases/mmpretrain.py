codebase_config = dict(type='mmpretrain', task='Classification')
