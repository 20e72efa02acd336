# The reference for CarStudio's features benchmark: torchvision's MobileNetV2 (random weights,
# weights=None: nothing is downloaded; the cost of a forward pass does not depend on them) on the
# CPU, features + global average pool = the same 1280-d output as CarStudio's backbone, over the
# same photos decoded with PIL (EXIF-rotate, shorter side to 224, centre crop, RGB in [0, 1]),
# batches of 8, torch.set_num_threads(threads). Decode and forward run one after the other in this
# process. Prints one JSON line: images/s with decode, its CPU-ms per image and peak RSS, and
# forward-only images/s on the same photos decoded beforehand.
import json, resource, sys, time
import torch
import torchvision
from PIL import Image, ImageOps

files_list, threads = sys.argv[1], int(sys.argv[2])
files = [l for l in open(files_list).read().split('\n') if l]
B = 8
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)
net = torchvision.models.mobilenet_v2(weights=None).eval()


def decode(f):
    im = ImageOps.exif_transpose(Image.open(f)).convert('RGB')
    w, h = im.size
    s = 224 / min(w, h)
    im = im.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BILINEAR)
    w, h = im.size
    l, t = (w - 224) // 2, (h - 224) // 2
    im = im.crop((l, t, l + 224, t + 224))
    return torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(224, 224, 3).permute(2, 0, 1).float() / 255


def embed(x):
    return torch.nn.functional.adaptive_avg_pool2d(net.features(x), 1).flatten(1)


with torch.no_grad():
    embed(torch.stack([decode(f) for f in files[:B]]))  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(files), B):
        out = embed(torch.stack([decode(f) for f in files[i:i + B]]))
        assert out.shape[1] == 1280
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    batches = [torch.stack([decode(f) for f in files[i:i + B]]) for i in range(0, len(files), B)]
    t1 = time.perf_counter()
    for x in batches:
        embed(x)
    fwd = time.perf_counter() - t1
n = len(files)
print(json.dumps({
    'images': n, 'threads': threads, 'batch': B, 'torch': torch.__version__, 'torchvision': torchvision.__version__,
    'imagesPerSec': n / secs, 'forwardImagesPerSec': n / fwd, 'cpuMsPerImage': cpu * 1000 / n,
    'peakRssMb': peak,
}))
