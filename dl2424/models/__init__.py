"""Models. Adding one is one new file here plus a config that uses it:

    # dl2424/models/mynet.py
    class MyNetParams(ModelParams):          # loss, l2, init come from ModelParams
        width: PositiveInt = Field(64, description="hidden units")   # every key: a description

    class MyNet(Model):
        def __init__(self, p: MyNetParams, info: DataInfo, dtype, rng): ...
            # fill self.params (and self.state), name the weights the L2 term acts on in
            # self.decay; raise UserError when `info` is data the model cannot take
        def forward(self, X, train, rng=None): ...   # -> (scores (n, K), cache)
        def backward(self, dscores, cache): ...      # -> {param name: data-loss gradient}

    @MODELS.register("mynet", MyNetParams)
    def mynet(p: MyNetParams, info: DataInfo, dtype, rng) -> MyNet:
        '''One line for `config show` and the error messages that list the models.'''
        return MyNet(p, info, dtype, rng)

The contract: a factory named after its type with the signature (params, DataInfo, dtype,
numpy Generator) -> Model; hyper-parameters as pydantic fields with Field(description=);
layers composed from dl2424.nn (nn/blocks.py: dense and norm_act blocks; nn/layers.py,
batchnorm.py, conv2d.py, charconv.py) as CS231n forward/backward pairs with caches. Every
module in this package is imported by dl2424.components, so registering is all it takes;
the trainer, checkpoints, gradcheck (numerical), report, predict and ensemble then work
unchanged. Optional: a torch twin for `gradcheck --against torch` (dl2424/gradcheck/twins/).
"""
