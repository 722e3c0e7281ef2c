"""Flower app that runs a fedpref experiment on a Flower deployment (SuperLink + SuperNodes).

The ServerApp drives `fedpref server init|plan|aggregate`; each ClientApp drives
`fedpref client check|train` on its node's shard. Flower only moves messages: the
sampling, the training and the aggregation are fedpref's.
"""
