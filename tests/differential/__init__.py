"""The differential harness: run one scenario on MLflow's own sqlite store and on ours, compare.

``book`` registers a suite's scenarios and gives them ``attempt`` and ``all_pages``;
``normalise`` hides what legitimately differs between two stores and prints differences;
``suite`` is the test class each suite subclasses, as the object stores subclass
``ObjectStoreConformance``. A suite keeps only its scenarios, its entity serialisers and
its normalisation settings (``tests/tracking/harness.py``, ``tests/registry/harness.py``).
"""
