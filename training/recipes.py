"""Training recipes: how a task compiles, feeds, fits and evaluates a model.

A recipe turns a registered model and a `DataBundle` into a trained model
and test metrics. Tasks with a plain supervised objective share
`SupervisedRecipe`; families with their own objective (a GAN's two
networks, an RBM's contrastive divergence) subclass `Recipe` and name the
subclass in their registry record as `recipe="module:Class"`.
"""

import importlib
import logging

logger = logging.getLogger(__name__)


class Recipe:
    """Base recipe. Subclasses override the steps they change.

    Args:
        spec: The model's `ModelSpec`.
        settings: Training settings (`epochs`, `batch_size`,
            `learning_rate`, `seed`, ...), already merged with the
            record's defaults.

    Attributes:
        run_dir: Folder of the run, set by the trainer before `fit`, so a
            recipe can write files there; `None` outside a `zoo train` run.
    """

    monitor = "val_loss"
    monitor_mode = "min"

    def __init__(self, spec, settings):
        self.spec = spec
        self.settings = dict(settings)
        self.run_dir = None

    def compile(self, model):
        raise NotImplementedError

    def datasets(self, bundle, augment=None):
        """Return `(train, validation, test)` `tf.data.Dataset`s."""
        from zoo import datasets

        batch_size = self.settings["batch_size"]
        seed = self.settings["seed"]
        train = datasets.as_dataset(bundle.train, batch_size, shuffle=True,
                                    seed=seed, augment=augment)
        validation = datasets.as_dataset(bundle.validation, batch_size)
        test = datasets.as_dataset(bundle.test, batch_size)
        return train, validation, test

    def fit(self, model, train, validation, callbacks, initial_epoch=0):
        return model.fit(
            train,
            validation_data=validation,
            epochs=self.settings["epochs"],
            initial_epoch=initial_epoch,
            steps_per_epoch=self.settings.get("steps_per_epoch"),
            callbacks=callbacks,
            shuffle=False,
            verbose=0,
        )

    def evaluate(self, model, test, bundle):
        """Return test metrics as a dict of floats."""
        results = model.evaluate(test, verbose=0, return_dict=True)
        return {f"test_{k}": float(v) for k, v in results.items()}

    def serving_model(self, model):
        """Return the Keras model that serves requests (the whole model)."""
        return model

    def input_model(self, model):
        """Return the Keras model whose input the training data feeds.

        The trainer checks the data's shape against this model's input. It
        defaults to the serving model; a GAN returns its discriminator,
        because it serves latent vectors but trains on images.
        """
        return self.serving_model(model)

    def sample_inputs(self, bundle, count=8):
        """Return real serving inputs for export checks, keyed by name."""
        name = next(iter(self.spec.inputs))
        return {name: bundle.test.x[:count]}


REGRESSION_TASKS = ("regression", "time-series-forecasting",
                    "set-regression")


class SupervisedRecipe(Recipe):
    """Adam and the task's loss: cross-entropy or mean squared error."""

    def compile(self, model):
        import keras

        optimizer = keras.optimizers.Adam(self.settings["learning_rate"])
        if self.spec.task in REGRESSION_TASKS:
            model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
        else:
            model.compile(
                optimizer=optimizer,
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )


def resolve_recipe(spec, settings):
    """Instantiate the recipe named by `spec.recipe`, else the default."""
    if spec.recipe is None:
        return SupervisedRecipe(spec, settings)
    module_name, _, attribute = spec.recipe.partition(":")
    try:
        recipe_class = getattr(importlib.import_module(module_name),
                               attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(
            f"Model '{spec.name}' names recipe {spec.recipe!r}, which cannot "
            f"be imported: {error}. The recipe must be 'module:Class'."
        ) from error
    return recipe_class(spec, settings)
