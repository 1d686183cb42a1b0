import { Module, type DynamicModule } from '@nestjs/common';
import { EventStoreModule } from '#eventstore';
import { DatabaseModule } from '#persistence';
import { LOGGER, type Logger } from '#platform';
import { PROJECTOR_CONFIG, type ProjectorConfig } from './config.js';
import { LiveProjection } from './live-projection.js';
import { ProjectorCommands } from './projector.commands.js';
import { ProjectorController } from './projector.controller.js';

@Module({})
export class ProjectorModule {
  static forRoot(config: ProjectorConfig, logger: Logger): DynamicModule {
    return {
      module: ProjectorModule,
      imports: [EventStoreModule.forRoot(config, 'projector'), DatabaseModule.forRoot(config, 'projector')],
      controllers: [ProjectorController],
      providers: [
        { provide: PROJECTOR_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        LiveProjection,
        ProjectorCommands,
      ],
      exports: [LiveProjection],
    };
  }
}
