# Loom's modules, lowest layer first: the one table both the build (CMakeLists.txt) and the
# layering test (check_layering.cmake) read. A module is the folder DIR (its sources, minus the
# folders of modules nested in it); it may include its own headers and those of the modules its
# DEPENDS reach, transitively; a module can only depend on modules declared above it.
#           name      DIR                          DEPENDS (direct; the lower ones come with them)
loom_module(core      src/loom/core)
loom_module(device    src/loom/device              DEPENDS core)
loom_module(io        src/loom/io                  DEPENDS core)
loom_module(data      src/loom/data                DEPENDS core)
loom_module(comm      src/loom/comm                DEPENDS device)
loom_module(kernels   src/loom/kernels             DEPENDS device)
loom_module(launch    src/loom/launch              DEPENDS comm)
loom_module(model     src/loom/model               DEPENDS kernels)
loom_module(optim     src/loom/optim               DEPENDS model)
loom_module(parallel  src/loom/parallel            DEPENDS comm optim)
loom_module(pipeline  src/loom/parallel/pipeline   DEPENDS parallel)
loom_module(ps        src/loom/parallel/ps         DEPENDS parallel)
loom_module(config    src/loom/config              DEPENDS pipeline ps)
loom_module(train     src/loom/train               DEPENDS data io config)
loom_module(planner   src/loom/parallel/planner    DEPENDS config)
loom_module(infer     src/loom/infer               DEPENDS train)
# Benchmarks, the planner's validation against real runs and the tokenizer's JavaScript
# reference: linked into the `loom` program (and the tests), never into the library.
loom_module(bench     bench                        DEPENDS launch planner infer)
