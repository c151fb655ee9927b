"""What a logged summary looks like: pure builders shared by the PyTorch helpers and the import.

Histogram statistics, percentiles, re-binning and pictures (``histograms``), image
layouts and encoding (``images``), model-graph drawings (``graphs``), PR curves,
meshes and embeddings (``records``), and the rule that turns any TensorBoard tag into a
name MLflow accepts (``names``). numpy, PIL, matplotlib and MLflow's validation only:
nothing here imports torch, so ``import-tensorboard`` runs without PyTorch
(``mlflow_plugin.torch`` feeds these from tensors; ``mlflow_plugin.transfer`` from
event files).
"""
