"""Quantisation-aware training and mixed-precision search whose evaluation forward is the deployed integer
arithmetic (``jaxpulp.train.qat``), with the cost surrogate in the loss (``jaxpulp.train.search``)."""
