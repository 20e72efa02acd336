// --device, shared by the commands whose models run on ONNX Runtime (features, predict): it sets
// $CARSTUDIO_ORT_DEVICE for this process and the job workers it starts, which is what
// createOrtSession (engine/ml/ort.ts) reads for every session.
import { Option } from 'commander';
import { ORT_DEVICE_ENV, ORT_DEVICES, type OrtDevice } from '../engine/ml/ort.ts';
import { UserError } from '../engine/workspace/errors.ts';

export function deviceOption(): Option {
  return new Option(
    '--device <device>',
    `where ONNX Runtime runs the models: auto (CUDA when onnxruntime-node's CUDA provider is installed and loads, else the CPU), ` +
      `cuda (try CUDA, and say why in one line when it fails before running on the CPU) or cpu; default $${ORT_DEVICE_ENV}, else auto`,
  ).argParser((v: string): OrtDevice => {
    if (!(ORT_DEVICES as readonly string[]).includes(v)) throw new UserError(`--device must be one of ${ORT_DEVICES.join(', ')}, got '${v}'`);
    return v as OrtDevice;
  });
}

/** Makes --device, when given, the device of every ONNX Runtime session this process creates from now on. */
export function applyDevice(device: OrtDevice | undefined): void {
  if (device) process.env[ORT_DEVICE_ENV] = device;
}
