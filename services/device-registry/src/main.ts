import { runService } from '../../../platform/service';
import { startDeviceRegistry } from './app';
import { readConfig, SERVICE } from './config';

runService(SERVICE, (log) => startDeviceRegistry(readConfig(), log));
