"""Default data use terms for a new catalog; the coordinator edits `CATALOG/terms.md`.

Modelled on credentialed-access agreements for clinical data: synthetic images from a model
trained on patients are gated, not open, even with a differential privacy guarantee.
"""

DEFAULT_TERMS = """\
# Data use terms for busgen-fed synthetic releases

By accepting these terms with your access token you agree that:

1. You will use the released synthetic images for research and method development only,
   never for clinical diagnosis or treatment decisions.
2. You will not attempt to re-identify any person, or to infer whether any person's images
   were used to train the generator.
3. You will not share your access token, nor redistribute the releases outside your research
   group, without the consortium's written permission.
4. You will report any image that appears to show identifying information to the consortium
   coordinator immediately and delete your copies of it.
5. You will cite the consortium and the release id and version in publications.

Every access with your token is recorded in the catalog's access log.
"""
