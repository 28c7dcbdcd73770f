"""The paper's protocols: base-to-new, cross-dataset, domain generalisation."""
