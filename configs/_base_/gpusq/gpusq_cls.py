# The hook stack of sparse24_qat_kd.py and the distiller's kd_cfg of
# kd_classification.py for mmpretrain classifiers, keeping the task config's
# own schedule (phase Q from half of it); gpusq_cls_*.py add a two-phase
# fine-tuning schedule.
_base_ = ['./sparse24_qat_kd.py', './kd_classification.py']
